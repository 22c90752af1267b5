"""Tests of tools/ (this folder mirrors the package it tests)."""
