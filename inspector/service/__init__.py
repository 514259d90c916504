"""Running as a service: the systemd notify protocol and the pipeline watchdog."""
