"""``python -m ccr.job --spec FILE|-``"""

from ccr.job.pipeline import main

raise SystemExit(main())
