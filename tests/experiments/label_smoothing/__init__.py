"""Tests of experiments/label_smoothing/ (this folder mirrors the package it tests)."""
