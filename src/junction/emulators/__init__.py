"""Small ASGI apps standing in for the external systems Junction talks to.

Each serves the documented shapes, status codes and auth of its system, plus a ``/_admin``
control surface for tests and the demo. ``junction serve --demo`` mounts each one under
``/emulators/<name>``.
"""
