"""The model library on the artist's side: uploads, sync of local folders, the CLI."""
