"""Tests of examples/ (this folder mirrors the package it tests)."""
