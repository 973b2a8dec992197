"""Pages of a long list: one COUNT and one LIMIT/OFFSET query, however long the list is.

Every paginated host page (a service's slots, a slot's guests, the upcoming slots) goes through
``paginate``, and its template shows the page with the ``pager`` macro of ``_macros.html``.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from sqlalchemy import Integer, Select, bindparam, func, select

from app.extensions import db


@dataclass
class Page:
    """One page of a list: its items and where it sits in the whole list."""

    items: list
    #: 1-based page number (already clamped to the pages that exist).
    number: int
    per_page: int
    #: Items in the whole list.
    total: int

    @classmethod
    def at(cls, number: int, per_page: int, total: int) -> Page:
        """Page ``number`` of a list of ``total`` items, its items still to be read.

        A page past the last one is the last one (a list shrinks while people page through it),
        and anything below 1 is the first.
        """
        return cls(items=[], number=min(max(number, 1), max(ceil(total / per_page), 1)), per_page=per_page,
                   total=total)

    @property
    def offset(self) -> int:
        """How many items of the list come before this page."""
        return (self.number - 1) * self.per_page

    @property
    def pages(self) -> int:
        """How many pages the list has (at least one, even when empty)."""
        return max(ceil(self.total / self.per_page), 1)

    @property
    def has_prev(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages

    @property
    def first(self) -> int:
        """1-based position of the page's first item in the list (0 when the list is empty)."""
        return self.offset + 1 if self.total else 0

    @property
    def last(self) -> int:
        """1-based position of the page's last item."""
        return min(self.number * self.per_page, self.total)


def paginate(statement: Select, number: int, per_page: int, *, total: int | None = None,
             scalars: bool = True) -> Page:
    """Page ``number`` of ``statement`` (which must be ordered), ``per_page`` items a page
    (clamped as ``Page.at`` says).

    :param total: the list's length when the caller already counted it (saves the COUNT).
    :param scalars: ``False`` for a statement of several columns: the items are then rows.
    """
    if total is None:
        total = db.session.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
    page = Page.at(number, per_page, total)
    if total:
        result = db.session.execute(statement.limit(per_page).offset(page.offset))
        page.items = list(result.scalars() if scalars else result)
    return page


def counted(statement: Select) -> Select:
    """``statement`` for ``first_page``: each row also has the list's length (``total``), and the
    page size is a bind parameter, so the statement can be built once and kept.
    """
    return statement.add_columns(func.count().over().label("total")).limit(bindparam("per_page", type_=Integer))


def first_page(statement: Select, per_page: int, **params) -> Page:
    """The first page of a ``counted`` statement (rows) and the list's length, in one query.

    For a list that a page only previews, where a COUNT would cost as much as the rows.
    """
    rows = db.session.execute(statement, {"per_page": per_page, **params}).all()
    return Page(items=rows, number=1, per_page=per_page, total=rows[0].total if rows else 0)
