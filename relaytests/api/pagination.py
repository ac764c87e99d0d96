"""Pages of a list, 50 rows each, as the pages of the portal."""

from __future__ import annotations

from rest_framework.pagination import PageNumberPagination


class Pages(PageNumberPagination):
    """DRF's page numbers, strictly: `?page=` with nothing or `?page=last` is a page that is not there
    (404), not the first or the last one, so a client's mistake shows."""

    last_page_strings = ()

    def get_page_number(self, request, paginator):
        return request.query_params.get(self.page_query_param, 1)
