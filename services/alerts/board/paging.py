"""Long lists a page at a time, with the GOV.UK pagination component's items. Pure."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


class PageOutOfRange(LookupError):
    """A page number past the last page: the page answers 404, as for anything not there."""


@dataclass(frozen=True)
class PageLink:
    """One item of the pagination list: a page number, or an ellipsis (number None)."""

    number: int | None
    current: bool = False


@dataclass(frozen=True)
class Paged(Generic[T]):
    items: Sequence[T]
    number: int
    pages: int
    total: int
    first: int  # 1-based position of the first item shown (0 when there is none)
    last: int

    @property
    def previous(self) -> int | None:
        return self.number - 1 if self.number > 1 else None

    @property
    def next(self) -> int | None:
        return self.number + 1 if self.number < self.pages else None

    def links(self) -> list[PageLink]:
        """First, last, current and its neighbours; an ellipsis for each gap (GOV.UK's pattern)."""
        wanted = sorted({1, self.pages, self.number - 1, self.number, self.number + 1} & set(range(1, self.pages + 1)))
        result: list[PageLink] = []
        for number in wanted:
            if result and result[-1].number is not None and number - result[-1].number > 1:
                result.append(PageLink(None))
            result.append(PageLink(number, number == self.number))
        return result


def paginate(items: Sequence[T], number: int, per_page: int) -> Paged[T]:
    """Page `number` (from 1) of `items`; page 1 of nothing is an empty page, not an error."""
    pages = max(1, -(-len(items) // per_page))
    if number < 1 or number > pages:
        raise PageOutOfRange(number)
    start = (number - 1) * per_page
    shown = items[start : start + per_page]
    return Paged(shown, number, pages, len(items), start + 1 if shown else 0, start + len(shown))
