"""Language understanding: label schema, synthetic EN/ES corpus, parsers (baseline and distilled student)."""

from nlu.schema import ENTITY_LABELS, INTENTS, Entity, NluResult, Parser

__all__ = ["ENTITY_LABELS", "INTENTS", "Entity", "NluResult", "Parser"]
