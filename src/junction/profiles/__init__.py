"""User profiles of seeds 000 and 003: people, their files, their Airtable sync and live updates."""
