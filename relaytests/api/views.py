"""The API's endpoints: the pages' querysets (`access`), form (`ApiRegisterServerForm`) and run rules
(`runs.start`), answered in JSON."""

from __future__ import annotations

from django.http import Http404, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularSwaggerSplitView
from rest_framework import authentication, generics, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from relaytests import access, runs
from relaytests import tokens as api_tokens
from relaytests.api import serializers as api
from relaytests.forms import ApiRegisterServerForm, ApiTokenForm
from relaytests.models import MailServer, TestRun, VerdictChange
from relaytests.tasks import enqueue_run
from relaytests.vantages import with_other_views
from relaytests.views.dashboards import COUNTED, server_rows, verdict_counts
from relaytests.views.servers import _site_url


def query_of(request, serializer_class) -> dict:
    """The query string, checked by `serializer_class`: a 400 naming the bad parameter, never a 500.
    As a plain dict, so an empty parameter (`?since=`) is refused rather than taken for an absent one."""
    query = serializer_class(data=request.query_params.dict())
    query.is_valid(raise_exception=True)
    return query.validated_data


class DepartmentList(generics.ListAPIView):
    """The departments this user may register servers for: their own, or every one for central IT."""

    serializer_class = api.DepartmentSerializer

    def get_queryset(self):
        return access.departments_for(self.request.user)


class ServerViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The servers this user may see: their departments', or every one for central IT."""

    serializer_class = api.ServerSerializer
    lookup_value_converter = "int"

    def get_queryset(self):
        return server_rows(access.servers_for(self.request.user))

    @extend_schema(parameters=[api.ServersQuery])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def filter_queryset(self, queryset):
        if self.action != "list":
            return queryset
        query = query_of(self.request, api.ServersQuery)
        if "department" in query:
            queryset = queryset.filter(department__slug=query["department"])
        if "verdict" in query:
            queryset = queryset.filter(COUNTED[query["verdict"]])
        return queryset

    @extend_schema(
        request=api.RegisterServerSerializer,
        responses={201: api.ServerSerializer},
        description="Register a server, as the Register page does: the same scope check and the same "
        "error messages, by field.",
    )
    def create(self, request):
        shape = api.RegisterServerSerializer(data=request.data)
        shape.is_valid(raise_exception=True)
        form = ApiRegisterServerForm(shape.validated_data, departments=access.departments_for(request.user))
        server = form.register(request.user) if form.is_valid() else None
        if server is None:
            return form_refused(form)
        shown = self.get_queryset().get(pk=server.pk)
        return Response(self.get_serializer(shown).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=None,
        responses={
            201: api.RunSerializer,
            409: api.RefusedRunSerializer,
            429: api.RefusedRunSerializer,
            503: api.RefusedRunSerializer,
        },
        description="Start a test, as the Test button does: 409 with the run when one is queued or "
        "running, 429 past the hourly cap, 503 (the run failed) when the task queue is unreachable.",
    )
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        server: MailServer = self.get_object()
        try:
            run = runs.start(server, request.user, TestRun.Trigger.API, site_url=_site_url(request))
        except runs.AlreadyActive as refusal:
            return refused(request, str(refusal), status.HTTP_409_CONFLICT, refusal.run)
        except runs.NotStarted as refusal:
            return refused(request, str(refusal), status.HTTP_429_TOO_MANY_REQUESTS)
        if not enqueue_run(run):
            return refused(request, run.status_reason, status.HTTP_503_SERVICE_UNAVAILABLE, run)
        shown = api.RunSerializer(run, context={"request": request}).data
        location = reverse("api-run-detail", args=[run.pk])
        return Response(shown, status=status.HTTP_201_CREATED, headers={"Location": location})


class TokenCreate(APIView):
    """A program's first token, from its user's name and password (or a signed-in browser). Not from a
    token: one that leaked must not make others that outlive its revocation."""

    authentication_classes = [authentication.BasicAuthentication, authentication.SessionAuthentication]

    @extend_schema(
        request=api.NewTokenRequestSerializer,
        responses={201: api.NewTokenSerializer},
        description="Create a personal API token, as the API tokens page does: the token is in the "
        "answer this once. Sign in with HTTP Basic (a local account's user name and password) or a session.",
    )
    def post(self, request):
        shape = api.NewTokenRequestSerializer(data=request.data)
        shape.is_valid(raise_exception=True)
        form = ApiTokenForm(shape.validated_data)
        if not form.is_valid():
            return form_refused(form)
        token, text = api_tokens.issue(request.user, form.cleaned_data["name"], form.expires_at())
        shown = api.NewTokenSerializer(token, context={"text": text}).data
        return Response(shown, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


def form_refused(form) -> Response:
    """A 400 with the page's form's messages by field, named as Django REST framework names them."""
    errors = {"non_field_errors" if field == "__all__" else field: e for field, e in form.errors.items()}
    return Response(errors, status=status.HTTP_400_BAD_REQUEST)


def refused(request, detail: str, code: int, run: TestRun | None = None) -> Response:
    shown = api.RunSerializer(run, context={"request": request}).data if run else None
    return Response({"detail": detail, "run": shown}, status=code)


class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The runs of the servers this user may see, newest first."""

    serializer_class = api.RunSerializer
    lookup_value_converter = "int"

    def get_queryset(self):
        # A part is no run of the list, but is found by its id (a run's other_views name them).
        visible = access.runs_for(self.request.user, with_parts=self.action != "list")
        return visible if self.action == "report" else visible.defer("report", "addresses")

    def get_serializer(self, *args, **kwargs):
        if args and kwargs.get("many"):
            with_other_views(args[0])  # one query for the parts of the page's runs
        return super().get_serializer(*args, **kwargs)

    @extend_schema(parameters=[api.RunsQuery])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def filter_queryset(self, queryset):
        if self.action != "list":
            return queryset
        return queryset.filter(**query_of(self.request, api.RunsQuery))  # its names are the columns

    @extend_schema(
        responses={200: OpenApiTypes.OBJECT},
        description="The run's report (schema relaytest/1, docs/report-schema.md) as stored and shown on its "
        "page; so far while the run is live, {} while it is queued.",
    )
    @action(detail=True)
    def report(self, request, pk=None):
        return Response(self.get_object().report)


class VerdictChangeList(generics.ListAPIView):
    """Verdict changes of the servers this user may see, oldest first: poll with `since`."""

    serializer_class = api.VerdictChangeSerializer

    @extend_schema(parameters=[api.VerdictChangesQuery])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        changes = VerdictChange.objects.filter(server__in=access.servers_for(self.request.user))
        since = query_of(self.request, api.VerdictChangesQuery).get("since")
        if since:
            changes = changes.filter(created_at__gte=since)
        return changes.select_related("server__department").order_by("created_at", "pk")


class Dashboard(APIView):
    """Central IT's counts, from the servers' state columns as on the overview; 404 to everyone else."""

    @extend_schema(responses={200: api.DashboardSerializer})
    def get(self, request):
        if not request.user.is_staff:
            raise Http404
        servers = MailServer.objects.all()
        counts = {value: number for value, _label, number in verdict_counts(servers)}
        return Response(api.DashboardSerializer({"servers": servers.count(), "counts": counts}).data)


@csrf_exempt  # nothing to protect: a POST here must get the same 404, not the CSRF page
def not_found(request, path: str = ""):
    """Any other path under /api/: a 404 in JSON, as the API's own, not the pages' HTML one."""
    return JsonResponse({"detail": "Not found."}, status=404)


class Documentation(SpectacularSwaggerSplitView):
    """Swagger UI from our own static files, its settings in a script of its own (no inline script)."""

    template_name = "relaytests/api_docs.html"
    url_name = "api-schema"
