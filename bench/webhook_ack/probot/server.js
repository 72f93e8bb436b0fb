// The Node peer of bench/webhook_ack: Probot 14 as `probot run` serves an app, whose handler
// claims the delivery id in Redis (ioredis SET NX) and adds a BullMQ job carrying the event,
// the same claim-and-queue mlgate does. Started by `python -m bench.webhook_ack`.
//
// Environment: PORT, HOST, WEBHOOK_SECRET, WEBHOOK_PATH, REDIS_URL (redis://host:port/db or
// unix:///path), BENCH_PREFIX (every Redis key of this server starts with it; BullMQ's
// prefix too) and PROBOT_PROCESSES (1 = one Node process, as `probot run` runs).
import cluster from "node:cluster";
import { generateKeyPairSync } from "node:crypto";

import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { run } from "probot";

// GitHub keeps an id for redelivery for days; mlgate keeps its claims 8 days, so do we.
const CLAIM_TTL_SECONDS = 8 * 24 * 3600;
export const QUEUE_NAME = "events";

function redisClient(url) {
  if (url.startsWith("unix://")) {
    const parsed = new URL(url);
    return new Redis({ path: parsed.pathname, db: Number(parsed.searchParams.get("db") || 0) });
  }
  return new Redis(url);
}

async function serve() {
  const prefix = process.env.BENCH_PREFIX;
  const redis = redisClient(process.env.REDIS_URL);
  // One connection for the claim and the job, as one web process of mlgate has one pool.
  const queue = new Queue(QUEUE_NAME, { connection: redis, prefix });

  const app = (probot) => {
    probot.onAny(async (context) => {
      const claimed = await redis.set(
        `${prefix}:delivery:${context.id}`,
        "queued",
        "EX",
        CLAIM_TTL_SECONDS,
        "NX",
      );
      if (claimed !== "OK") {
        return; // a duplicate: Probot still answers 200
      }
      await queue.add(context.name, { id: context.id, payload: context.payload }, {
        jobId: context.id,
      });
    });
  };

  // Probot needs an App key to start, though this path never calls GitHub: any key will do.
  const { privateKey } = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs1", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
  const server = await run(app, {
    env: {
      APP_ID: "1",
      PRIVATE_KEY: privateKey,
      WEBHOOK_SECRET: process.env.WEBHOOK_SECRET,
      WEBHOOK_PATH: process.env.WEBHOOK_PATH || "/webhooks/github",
      HOST: process.env.HOST || "127.0.0.1",
      PORT: process.env.PORT,
      // What a deployed Probot logs: one JSON line per request (pino-http), like gunicorn's
      // access log line plus mlgate's own.
      NODE_ENV: "production",
      LOG_LEVEL: "info",
      LOG_FORMAT: "json",
    },
  });

  process.on("SIGTERM", async () => {
    await server.stop();
    await queue.close();
    redis.disconnect();
    process.exit(0);
  });
}

const processes = Number(process.env.PROBOT_PROCESSES || "1");
if (processes > 1 && cluster.isPrimary) {
  // node:cluster shares one listening socket between processes, like gunicorn's workers.
  for (let i = 0; i < processes; i += 1) {
    cluster.fork();
  }
  let stopping = false;
  cluster.on("exit", (worker, code) => {
    if (!stopping) {
      console.error(`probot process ${worker.process.pid} exited with ${code}`);
      process.exitCode = 1;
    }
  });
  process.on("SIGTERM", () => {
    stopping = true;
    for (const worker of Object.values(cluster.workers)) {
      worker.process.kill("SIGTERM");
    }
  });
} else {
  await serve();
}
