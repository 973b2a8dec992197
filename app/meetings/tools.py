"""The video tools a host can link, and which one a service uses."""
from __future__ import annotations

from importlib import import_module

from app.meetings.provider import VideoTool

#: One module per tool, each with a module-level ``tool``; a new tool is one more line here.
TOOL_MODULES = ("app.zoom.provider", "app.google.provider")

_tools: dict[str, VideoTool] = {}


def _load() -> dict[str, VideoTool]:
    if not _tools:
        for name in TOOL_MODULES:
            tool = import_module(name).tool
            _tools[tool.key] = tool
    return _tools


def all_tools() -> list[VideoTool]:
    """Every tool, in the order the settings page lists them."""
    return list(_load().values())


def tool_named(key: str) -> VideoTool:
    """The tool of a stored key (``meetings.provider``)."""
    return _load()[key]


def tool_for(service) -> VideoTool | None:
    """The tool that issues the service's meetings, or None (fixed URL, none, in person)."""
    return _load().get(service.venue.value)


def tool_of_slot(slot) -> VideoTool:
    """The tool holding the slot's meeting (it may be another than the service's, after a change)."""
    from app.meetings.issuing import meeting_for

    meeting = meeting_for(slot.id)
    return tool_named(meeting.provider) if meeting is not None else tool_for(slot.service) or tool_named("zoom")


def plan_cut_minutes(service, link) -> int | None:
    """After how many minutes the host's plan ends the service's meetings with a full slot (None: never)."""
    tool = tool_for(service)
    if tool is None or link is None or not link.is_active:
        return None
    return tool.cut_minutes(link, participants=service.capacity + 1)


def shown_link(host, service):
    """The host's link to the service's tool as pages show it (None: not linked, or no tool)."""
    tool = tool_for(service)
    if tool is None:
        return None
    if tool.key == "zoom":
        return host.zoom_connection  # loaded with the request's user (``auth.accounts.load_user``)
    return tool.link_for(host.id)
