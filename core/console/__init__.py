"""What the operator console needs beyond the services it shares with the API and the CLI:
sign-in sessions, and the reads that join a customer's systems on one page."""
