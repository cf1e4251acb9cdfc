#!/usr/bin/env python
"""Django's command-line utility for Lucent Admin."""
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lucent_admin.settings")
    from django.core.management import execute_from_command_line

    from lucent_admin.startup import guarded

    guarded(lambda: execute_from_command_line(sys.argv))


if __name__ == "__main__":
    main()
