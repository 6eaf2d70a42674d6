from junction.cli import app

app()
