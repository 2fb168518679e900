"""The web face: server-rendered pages for people, over the same selectors and services as the wire and REST faces."""
