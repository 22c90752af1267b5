"""Tests of tools/training/ (this folder mirrors the package it tests)."""
