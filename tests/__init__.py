"""The test suite: one folder per package tested (tests/<package>/...), shared helpers and project-wide rules at
the top. Folders are packages so that test modules are named tests.<folder>.test_x and never collide."""
