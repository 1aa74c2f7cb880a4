"""The gateway: one decision core and the front doors over it."""
