"""Device overage: what a day owes, sending it to Stripe's billing meter, and what the customer
sees of it.

- `meters`: the Stripe side (the meter, each metered plan's overage price, the subscription's
  overage item) and which plans and statuses are metered.
- `days`: what a finished day owes, recorded as meter event rows before anything is sent.
- `sending`: one event sent, never twice (claim, send, record the answer).
- `runs`: the runs the tasks call: meter days (roll up, record, send) and send what is unsent.
- `moves`: the overage item removed or swapped (a plan change, a repair): its customer's unsent
  events sent first, so they bill under the item in force when the device-days happened.
- `events`: the operator's side: listing, retrying failed events, settling unconfirmed ones.
- `estimate`: the usage viewer's overage per day and over the billing period.
"""
