"""Names of the environment through which ``bastion serve`` hands its workers the
config (kept free of imports: the server's parent process reads them)."""

CONFIG_ENV = "BASTION_CONFIG"  # the config file's path (relative paths in it start there)
# The text that was checked: a worker started later (a reload, a respawn) serves it, not
# whatever the file holds by then.
CONFIG_TEXT_ENV = "BASTION_CONFIG_TEXT"
# What one environment string may hold on Linux is 128 KiB (MAX_ARG_STRLEN).
MAX_CONFIG_TEXT = 120 * 1024
