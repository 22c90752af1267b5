"""Tests of data/ (this folder mirrors the package it tests)."""
