"""Knowledge: connectors read a brand's sources; the store consolidates them into versioned,
deduplicated articles and chunks; the index retrieves from the published version."""
