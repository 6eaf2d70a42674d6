"""The "Example Usage" script of seed 001, run unchanged but for the server's address."""

from __future__ import annotations

import json
import subprocess

from tests.support.live import LiveServer

EXAMPLE_USAGE = """
# Create an application
APP_TOKEN=$(curl -X POST http://localhost:3000/applications \\
  -H "Content-Type: application/json" \\
  -d '{"application": {"name": "Test App"}}' \\
  | jq -r '.token')

echo "Application token: $APP_TOKEN"

# Create a chat
CHAT_NUMBER=$(curl -X POST http://localhost:3000/applications/$APP_TOKEN/chats \\
  | jq -r '.number')

echo "Chat number: $CHAT_NUMBER"

# Wait a moment for async processing
sleep 1

# Create a message
MESSAGE_NUMBER=$(curl -X POST http://localhost:3000/applications/$APP_TOKEN/chats/$CHAT_NUMBER/messages \\
  -H "Content-Type: application/json" \\
  -d '{"message": {"body": "Hello from the API!"}}' \\
  | jq -r '.number')

echo "Message number: $MESSAGE_NUMBER"

# Wait for indexing
sleep 2

# Search messages
curl "http://localhost:3000/applications/$APP_TOKEN/chats/$CHAT_NUMBER/messages/search?q=Hello"

# List all messages
curl "http://localhost:3000/applications/$APP_TOKEN/chats/$CHAT_NUMBER/messages"
"""  # noqa: E501


def test_the_seed_example_usage_script(chat_server: LiveServer) -> None:
    script = EXAMPLE_USAGE.replace("http://localhost:3000", chat_server.base_url)
    run = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    lines = run.stdout.replace("}][{", "}]\n[{").splitlines()
    assert lines[0].removeprefix("Application token: ") not in ("", "null", lines[0])
    assert lines[1] == "Chat number: 1"
    assert lines[2] == "Message number: 1"
    found, listed = json.loads(lines[3]), json.loads(lines[4])
    assert [(m["number"], m["body"]) for m in found] == [(1, "Hello from the API!")]
    assert listed == found
