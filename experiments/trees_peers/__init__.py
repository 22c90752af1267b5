"""Trees against the peers at equal wall-clock (README.md here); the scripts run from the checkout."""
