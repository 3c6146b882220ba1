# One image per function, from the repository root:
#   docker build --build-arg FUNCTION=vote_fn .      (or worker_fn, result_fn)
# The same image serves plain HTTP anywhere and Lambda invocations in the cloud, where the
# AWS Lambda Web Adapter extension turns each invocation into a request on $PORT.

# The builder does not read FUNCTION, so the three images share its cached layers.
FROM python:3.11.15-slim-bookworm AS builder
WORKDIR /build
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml .
# Only the runtime dependencies: the code is copied into the final stage as plain files.
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && pip install --no-cache-dir --disable-pip-version-check -r requirements.txt

FROM python:3.11.15-slim-bookworm
ARG FUNCTION
# The packages of local/profile.py FUNCTIONS; anything else stops the build here, with
# one line, rather than as a COPY of a missing folder or an image that cannot start.
RUN case "$FUNCTION" in \
        vote_fn|worker_fn|result_fn) ;; \
        *) echo "FUNCTION must be vote_fn, worker_fn or result_fn (docker build --build-arg FUNCTION=vote_fn .), not '$FUNCTION'" >&2; exit 1 ;; \
    esac
COPY --from=public.ecr.aws/awsguru/aws-lambda-adapter:1.0.1 /lambda-adapter /opt/extensions/lambda-adapter
# The CA bundle that verifies RDS's certificate (sslmode=verify-full). It is fetched from
# AWS when the image is built, so the build must reach that address; no checksum is pinned
# because none could be taken where this file was written. ADD leaves a downloaded file
# readable by root only: the RUN below opens it to the app's user (ADD --chmod needs
# BuildKit, and `sam build` goes through the Docker API, which may use the classic builder).
ADD https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem /opt/certs/rds-global-bundle.pem
COPY --from=builder /opt/venv /opt/venv
# Lambda's file system is read-only: bytecode is compiled at build time, never at run time.
# FUNCTION stays in the environment for the command below.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FUNCTION=${FUNCTION} \
    PORT=8080
WORKDIR /app
COPY common/ common/
COPY ${FUNCTION}/ ${FUNCTION}/
RUN python -m compileall -q common "$FUNCTION" \
    && chmod 644 /opt/certs/rds-global-bundle.pem \
    && useradd --system --no-create-home --uid 10001 app
USER 10001
EXPOSE 8080
# The command of local/profile.py uvicorn_argv(); sh expands $FUNCTION and $PORT, exec
# hands the server the signals.
CMD ["sh", "-c", "exec python -m uvicorn ${FUNCTION}.app:create_app --factory --host 0.0.0.0 --port $PORT --no-access-log --timeout-graceful-shutdown 3"]
