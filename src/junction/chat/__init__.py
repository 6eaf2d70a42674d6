"""The chat domain of seed 001: applications, their numbered chats and numbered messages."""
