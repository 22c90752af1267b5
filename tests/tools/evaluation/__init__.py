"""Tests of tools/evaluation/ (this folder mirrors the package it tests)."""
