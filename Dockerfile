# strait in a container: a static (musl) binary of the `dist` profile on a
# distroless base that has no shell and runs as a non-root user.
#
#   docker build -t strait .
#   docker run --rm strait --help
#
# ring and mimalloc need a C compiler; musl-dev gives the static libc.
FROM rust:1.95-alpine AS build
RUN apk add --no-cache musl-dev
WORKDIR /src
# Dependencies first, so a source change does not refetch the crates.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY examples ./examples
COPY benches ./benches
RUN cargo build --locked --profile dist --bin strait \
 && install -D -m 0755 target/dist/strait /out/strait

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/strait /usr/local/bin/strait
USER 65532:65532
# 15001: the sidecar/node listener; 15000: admin (/ready, /stats, the page).
EXPOSE 15001 15000
ENTRYPOINT ["/usr/local/bin/strait"]
