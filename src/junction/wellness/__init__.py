"""The wellness sync: clients and appointments pulled from an external API on schedules."""
