"""Background queries: texts naming what is usually not the object, so that a CAM or a
classifier has somewhere else to put "not this" (CLIP as RNN, ``papers/clip-as-rnn.txt``
Sec. 3.3 and appendix D, after CLIP-ES).

Named sets (:data:`BACKGROUND_QUERIES`):

- ``"car"``: the 23 the official CaR configs use (ground, land, grass, ... bridge);
- ``"terrestrial"``, ``"aquatic-atmospheric"``, ``"man-made"``: appendix D's three groups
  (Table 6 ablates them; all three together scored best);
- ``"none"``: no background query.
"""

from __future__ import annotations

from collections.abc import Sequence

from promptseg.errors import ConfigError

__all__ = ["BACKGROUND_QUERIES", "background_queries"]

BACKGROUND_QUERIES: dict[str, tuple[str, ...]] = {
    "car": (
        "ground", "land", "grass", "tree", "building", "wall", "sky", "lake", "water",
        "river", "sea", "railway", "railroad", "helmet", "cloud", "house", "mountain",
        "ocean", "road", "rock", "street", "valley", "bridge",
    ),
    "terrestrial": (
        "ground", "land", "grass", "tree", "mountain", "rock", "valley", "earth", "terrain",
        "forest", "bush", "hill", "field", "pasture", "meadow", "plateau", "cliff", "canyon",
        "ridge", "peak", "plain", "prairie", "tundra", "savanna", "steppe", "crag", "knoll",
        "dune", "glen", "dale", "copse", "thicket",
    ),
    "aquatic-atmospheric": (
        "sea", "ocean", "lake", "water", "river", "sky", "cloud", "pond", "stream", "lagoon",
        "bay", "gulf", "fjord", "estuary", "creek", "brook", "reservoir", "pool", "spring",
        "marsh", "swamp", "wetland", "glacier", "iceberg", "atmosphere", "stratosphere",
        "mist", "fog", "rain", "drizzle", "hail", "sleet", "snow", "thunderstorm", "breeze",
        "wind", "gust", "hurricane", "tornado", "monsoon", "cumulus", "cirrus", "stratus",
        "nimbus",
    ),
    "man-made": (
        "building", "house", "wall", "road", "street", "railway", "railroad", "bridge",
        "edifice", "structure", "apartment", "condominium", "skyscraper", "highway",
        "boulevard", "lane", "alley", "byway", "avenue", "expressway", "freeway", "path",
        "overpass", "underpass", "viaduct", "tunnel", "footbridge", "crosswalk", "culvert",
        "dam", "archway", "causeway", "plaza", "square", "station", "terminal",
    ),
    "none": (),
}


def background_queries(spec: str | Sequence[str] | None,
                       exclude: Sequence[str] = ()) -> tuple[str, ...]:
    """The background queries ``spec`` names: a set name from :data:`BACKGROUND_QUERIES`,
    several joined by ``+`` (``"terrestrial+man-made"``), or the texts themselves. Texts in
    ``exclude`` (the user's own queries: "sky" asked for is not background) are left out;
    order is kept, duplicates dropped."""
    if spec is None:
        return ()
    if isinstance(spec, str):
        texts: list[str] = []
        for name in spec.split("+"):
            name = name.strip()
            if name not in BACKGROUND_QUERIES:
                raise ConfigError(f"unknown background query set {name!r}; choose "
                                  f"{', '.join(BACKGROUND_QUERIES)} (or pass a list of texts)")
            texts += BACKGROUND_QUERIES[name]
    else:
        texts = [str(t) for t in spec]
    drop = {t.strip().lower() for t in exclude}
    return tuple(dict.fromkeys(t for t in texts if t.strip().lower() not in drop))
