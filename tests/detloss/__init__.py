"""Tests of detloss/ (this folder mirrors the package it tests)."""
