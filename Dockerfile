# Builds the `tandem` binary and ships it on a slim base.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin tandem

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/tandem tandem \
 && mkdir -p /var/lib/tandem && chown tandem /var/lib/tandem
COPY --from=build /src/target/release/tandem /usr/local/bin/tandem
USER tandem
WORKDIR /var/lib/tandem
EXPOSE 8080
ENTRYPOINT ["tandem"]
CMD ["serve"]
