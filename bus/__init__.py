"""The runtime of dossier-bus: broker adapter, publisher, consumer, sync service and tools."""
