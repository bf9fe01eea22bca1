from ccr.cli import main

raise SystemExit(main())
