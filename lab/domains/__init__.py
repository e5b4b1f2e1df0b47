"""Domain packs in the lab: the corpus from a pack's templates, the Rhino importer and the
build command (pack -> int8 ONNX student). The pack format is read by assistant.domain."""
