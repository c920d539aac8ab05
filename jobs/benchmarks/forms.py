"""The run-benchmark form. Validation is the API serializer's, so that the page and REST agree."""

from django import forms
from django.utils.translation import gettext_lazy as _

from jobs.choices import BenchmarkApi, JobState, PromptSource
from jobs.models import DEFAULT_BENCHMARK_CONCURRENCY, Job


class BenchmarkForm(forms.Form):
    target = forms.ChoiceField(label=_("Target"), choices=[("job", _("a running job")),
                                                           ("endpoint", _("an OpenAI-compatible endpoint URL"))],
                               initial="job", widget=forms.RadioSelect)
    job = forms.ModelChoiceField(label=_("Job"), required=False, queryset=Job.objects.none())
    endpoint_url = forms.CharField(label=_("Endpoint URL"), required=False, max_length=500,
                                   help_text=_("For example http://10.0.0.5:8000/v1"))
    model = forms.CharField(label=_("Served model name"), required=False, max_length=200,
                            help_text=_("Empty: the first model the endpoint lists at /v1/models."))
    label = forms.CharField(label=_("Label"), required=False, max_length=120,
                            help_text=_("How the run is named in comparisons, e.g. \"R1 w8a8 on MindIE\"."))
    concurrency = forms.CharField(label=_("Concurrency levels"),
                                  initial=", ".join(str(c) for c in DEFAULT_BENCHMARK_CONCURRENCY),
                                  help_text=_("Comma-separated, each from 1 to 1024, at most 16 levels."))
    requests_per_level = forms.IntegerField(label=_("Requests per level"), required=False, min_value=1,
                                            help_text=_("Empty: 4 × concurrency (at least 16), unless a duration "
                                                        "is given."))
    duration_s = forms.FloatField(label=_("Seconds per level"), required=False, min_value=1)
    prompt_source = forms.ChoiceField(label=_("Prompts"), choices=PromptSource.choices)
    input_tokens = forms.IntegerField(label=_("Input tokens"), initial=256, min_value=1)
    output_tokens = forms.IntegerField(label=_("Output tokens"), initial=128, min_value=1)
    dataset_path = forms.CharField(label=_("Dataset file (JSONL)"), required=False, max_length=500,
                                   help_text=_('One JSON object a line: {"prompt": "..."} or {"messages": [...]}, '
                                               'optionally "output_tokens". Relative to the dataset directory.'))
    api = forms.ChoiceField(label=_("API"), choices=BenchmarkApi.choices)
    request_timeout_s = forms.FloatField(label=_("Request timeout (s)"), initial=120, min_value=1)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["job"].queryset = Job.objects.filter(
            state__in=[JobState.RUNNING, JobState.DEGRADED]).select_related("model_version__model").order_by("name")

    @staticmethod
    def initial_from(run) -> dict:
        """The form's values for "Run again": every setting of ``run`` (its job, if still running, is
        chosen in the job list; otherwise the target falls back to the endpoint the run used)."""
        initial = {key: getattr(run, key) for key in ("model", "label", "prompt_source", "input_tokens",
                                                       "output_tokens", "dataset_path", "api", "request_timeout_s",
                                                       "requests_per_level", "duration_s")}
        initial["concurrency"] = ", ".join(str(c) for c in run.concurrency or [])
        if run.job_id is not None:
            initial.update(target="job", job=run.job_id)
        else:
            initial.update(target="endpoint", endpoint_url=run.endpoint_url)
        return initial

    def api_payload(self) -> dict:
        data = self.cleaned_data
        payload = {key: data[key] for key in ("model", "label", "prompt_source", "input_tokens", "output_tokens",
                                              "dataset_path", "api", "request_timeout_s")}
        if data["target"] == "job":
            payload["job"] = data["job"].pk if data["job"] else None
        else:
            payload["endpoint_url"] = data["endpoint_url"]
        levels = [part.strip() for part in data["concurrency"].replace(";", ",").split(",") if part.strip()]
        payload["concurrency"] = levels
        for key in ("requests_per_level", "duration_s"):
            if data[key] is not None:
                payload[key] = data[key]
        return payload
