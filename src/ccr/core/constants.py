"""Names every component agrees on, defined once: the API group, labels, annotations, the job container.

The model (``ccr.core.model``), the operator's builders and views, the Kubernetes store and the chart tests
import them from here; nothing else spells them out.
"""

from __future__ import annotations

# The ClaudeTask resource.
GROUP = "ccr.dev"
VERSION = "v1alpha1"
KIND = "ClaudeTask"
PLURAL = "claudetasks"
SINGULAR = "claudetask"
SHORT_NAMES = ("ct",)
API_VERSION = f"{GROUP}/{VERSION}"

# Labels and annotations the operator puts on what it creates.
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "ccr-operator"
COMPONENT_LABEL = "app.kubernetes.io/component"
TASK_UID_LABEL = f"{GROUP}/task-uid"  # a uid is a valid label value; a task name (<= 253 chars) is not
TASK_NAME_ANNOTATION = f"{GROUP}/task"
# Set by the API (``ccr.kube.store``) on a ClaudeTask once its transcript is safely archived.
ARCHIVED_ANNOTATION = f"{GROUP}/transcript-archived"
# Set by the API when it creates a ClaudeTask: the submission time to the microsecond (creationTimestamp
# has seconds only), so tasks submitted within one second start in the order they were submitted.
SUBMITTED_ANNOTATION = f"{GROUP}/submitted"

# The job pod: its one container and the user it runs as (the job image's ``ccr`` user).
CONTAINER_NAME = "job"
RUN_AS = 10001

# A task's branch: every task works on ``claude/<id of the first task of its thread>``.
BRANCH_PREFIX = "claude/"
