// passkeys: added in a later step
