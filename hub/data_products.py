"""Data products: every producer stream with a data contract, as the portal's views describe it.

One model for every view of the portal, so the DCAT catalogue (:mod:`hubql.catalog`) and the CKAN API
(:mod:`hubql.ckan`) cannot drift apart: a :class:`DataProduct` is read from one contract
(:mod:`hub.contracts`) and the ontology; :class:`DataProducts` holds them all and answers which ones a
caller may know exist (a product whose ``metadataLabel`` the caller does not satisfy is, for that caller,
exactly as a product that does not exist).

Distributions depend on where the API is reached, so :meth:`DataProduct.distributions` takes the base URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from hub.caller import Caller
from hub.contracts import Contract, load_contracts
from hub.settings import Settings
from ontology.model import CIM16_NS, GAS_NS, Ontology

# Open Energy's sensitivity classes: their names and the EU access right each amounts to.
ACCESS_RIGHTS: Final[dict[str, str]] = {
    "OE-O": "PUBLIC",
    "OE-SA": "RESTRICTED",
    "OE-SB": "RESTRICTED",
    "OE-SP": "RESTRICTED",
    "OE-C": "NON_PUBLIC",
}
SENSITIVITY_NAMES: Final[dict[str, str]] = {
    "OE-O": "Open",
    "OE-SA": "Shared: any registered user",
    "OE-SB": "Shared: users meeting conditions",
    "OE-SP": "Shared: personal data",
    "OE-C": "Closed",
}
# The ontology namespace each domain's classes come from (what a product conforms to).
DOMAIN_NAMESPACES: Final[dict[str, str]] = {"Electricity": CIM16_NS, "Gas": GAS_NS}
# Licences by URL: the short id and title CKAN portals know them by.
LICENCES: Final[dict[str, tuple[str, str]]] = {
    "https://www.nationalarchives.gov.uk/doc/open-government-licence/version/3/": (
        "OGL-UK-3.0",
        "Open Government Licence v3.0",
    ),
    "https://creativecommons.org/licenses/by/4.0/": ("CC-BY-4.0", "Creative Commons Attribution 4.0"),
    "https://creativecommons.org/licenses/by-sa/4.0/": (
        "CC-BY-SA-4.0",
        "Creative Commons Attribution Share-Alike 4.0",
    ),
    "https://creativecommons.org/publicdomain/zero/1.0/": ("CC0-1.0", "Creative Commons CCZero"),
    "https://opendatacommons.org/licenses/odbl/1-0/": ("ODbL-1.0", "Open Data Commons Open Database License"),
}


@dataclass(frozen=True, slots=True)
class Distribution:
    """One way to get a product's data: ``key`` names it for every view (``graphql``, ``changes``,
    ``contract``)."""

    key: str
    title: str
    description: str
    url: str
    format: str
    media_type: str


@dataclass(frozen=True)
class DataProduct:
    """A producer's stream as a data product, read from its contract."""

    contract: Contract
    domains: tuple[str, ...]  # of its classes that the ontology knows, sorted

    @property
    def producer(self) -> str:
        return self.contract.producer

    @property
    def publisher(self) -> str:
        """The organisation that publishes it: the contract's tenant, else the producer."""
        return self.contract.document.tenant or self.contract.producer

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(sorted(self.contract.classes))

    @property
    def sensitivity_name(self) -> str:
        return SENSITIVITY_NAMES.get(self.contract.sensitivity, self.contract.sensitivity)

    @property
    def access_right(self) -> str:
        # A class the table does not know is treated as the most closed one.
        return ACCESS_RIGHTS.get(self.contract.sensitivity, "NON_PUBLIC")

    @property
    def namespaces(self) -> tuple[str, ...]:
        return tuple(DOMAIN_NAMESPACES[d] for d in self.domains if d in DOMAIN_NAMESPACES)

    @property
    def licence_id(self) -> str:
        """The licence's short id; its URL when it is not one of the licences portals name."""
        return LICENCES.get(self.contract.licence, (self.contract.licence, ""))[0]

    @property
    def licence_title(self) -> str:
        return LICENCES.get(self.contract.licence, ("", self.contract.licence))[1]

    def contract_url(self, base: str) -> str:
        return f"{base}/catalog/contracts/{self.producer}"

    def distributions(self, base: str) -> tuple[Distribution, ...]:
        """Its GraphQL view, its change feed and its contract, for an API reached at ``base``."""
        return (
            Distribution(
                "graphql",
                "GraphQL view",
                _VIEW_TEXT.format(producer=self.producer),
                f"{base}/graphql",
                "JSON",
                "application/json",
            ),
            Distribution(
                "changes",
                "Change feed",
                _FEED_TEXT.format(producer=self.producer),
                f"{base.replace('http', 'ws', 1)}/graphql",
                "JSON",
                "application/json",
            ),
            Distribution(
                "contract",
                "Data contract",
                f"Data contract {self.contract.id} {self.contract.version} (Open Data Contract Standard).",
                self.contract_url(base),
                "YAML",
                "application/yaml",
            ),
        )


class DataProducts:
    """The data products of the contracts folder (``settings.contracts_dir``), read once when the API
    starts."""

    def __init__(self, settings: Settings, ontology: Ontology) -> None:
        self.settings = settings
        folder: Path | None = settings.contracts_dir
        contracts: Mapping[str, Contract] = load_contracts(folder) if folder is not None else {}
        self.products: Mapping[str, DataProduct] = {
            producer: DataProduct(
                contract,
                tuple(sorted({ontology.domain(c) for c in contract.classes if c in ontology.classes})),
            )
            for producer, contract in sorted(contracts.items())
        }

    def visible(self, caller: Caller) -> list[DataProduct]:
        """The products ``caller`` may know exist, by producer id."""
        auths = caller.authorizations
        return [p for p in self.products.values() if p.contract.metadata_visible(auths)]

    def find(self, producer: str, caller: Caller) -> DataProduct | None:
        """The product of ``producer``; None alike when there is none and when ``caller`` may not know of
        it."""
        found = self.products.get(producer)
        if found is None or not found.contract.metadata_visible(caller.authorizations):
            return None
        return found


def iso_duration(seconds: float) -> str:
    """An ISO 8601 / xsd:duration such as ``PT15M`` or ``P1D``."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    time = "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes, "M"), (secs, "S")) if n)
    return "P" + (f"{days}D" if days else "") + (f"T{time}" if time else "") if whole else "PT0S"


_VIEW_TEXT: Final = (
    "The producer's objects in the hub's graph, queried over GraphQL (each object names its producer, "
    "here {producer!r}); each caller sees the objects its clearance allows."
)
_FEED_TEXT: Final = (
    "Changes to the producer's objects ({producer!r}) as they are committed: GraphQL subscriptions over "
    "a websocket, fed from the hub's Kafka change topic; each caller receives the changes it may see."
)
