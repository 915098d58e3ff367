"""One module per command; each has ``main(argv, console) -> int`` and a plain function tests call."""
