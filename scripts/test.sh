#!/usr/bin/env bash
# Quick start, command 2: the full test suite (offline unit tests on tiny seeded models, and
# real-model tests on SmolLM2 against ../shared/fixtures/smollm2). Release mode, so the real-model
# tests run at engine speed; the build is shared with scripts/setup.sh.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"
"$REPO_ROOT/scripts/install-deps.sh"
# The ROUGE test's oracle (Google's rouge-score with NLTK's Porter stemmer); tests only.
if ! python3 -c "import rouge_score, nltk" 2>/dev/null; then
    echo "== installing rouge-score for the ROUGE test" >&2
    python3 -m pip install --quiet rouge-score==0.1.2 nltk==3.10.4 >&2
fi
swift build "${SWIFT_FLAGS[@]}" --build-tests
swift test "${SWIFT_FLAGS[@]}" --skip-build "$@"
