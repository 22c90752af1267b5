"""Tests of fileio/ (this folder mirrors the package it tests)."""
