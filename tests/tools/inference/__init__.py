"""Tests of tools/inference/ (this folder mirrors the package it tests)."""
