from delegation.cli import entry

entry()
