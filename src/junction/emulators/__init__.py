"""Small ASGI apps standing in for the external systems Junction talks to.

Each serves the documented shapes, status codes and auth of its system, plus a small control
surface for tests and the demo (``/_admin`` or, for Airtable, ``/_emulator``).
``junction serve --demo`` mounts each one under ``/emulators/<name>``.
"""
