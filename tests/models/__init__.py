"""Tests of models/ (this folder mirrors the package it tests)."""
