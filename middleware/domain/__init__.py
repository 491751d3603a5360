"""Pure domain rules: jobs, their state machine, generation rules. No I/O imports here."""
