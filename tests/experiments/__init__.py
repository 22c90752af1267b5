"""Tests of experiments/ (this folder mirrors the package it tests)."""
