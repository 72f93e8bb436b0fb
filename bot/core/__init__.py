"""Pure logic: config, commands, changes, metrics and DVC files, gates, comparison, rendering."""
