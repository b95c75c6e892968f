"""What an operator checks every morning: scheduled jobs, money at risk, Stripe events, meter
events, billing issues, the next invoice. Queries and actions the console and the CLI share."""
