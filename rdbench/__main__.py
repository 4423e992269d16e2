from rdbench.cli import main

raise SystemExit(main())
