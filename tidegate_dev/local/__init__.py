"""Local mode: moto server, resources as deployed, and the event-source-mapping emulator."""
