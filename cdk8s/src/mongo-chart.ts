/**
 * MongoDB as a replica set of three: a StatefulSet behind a headless
 * Service (stable member names), a Job that initiates the set and creates
 * the services' user, a disruption budget that keeps a majority up, and a
 * NetworkPolicy naming who may connect.
 *
 * MongoDB stays outside the mesh (no sidecar): Istio can neither read nor
 * fault its protocol, a sidecar in the init Job would keep the Job from ever
 * completing, and the members' own traffic needs nothing from the mesh.
 * Meshed clients send it plain TCP (Istio's auto mTLS sees no sidecar);
 * MongoDB's own authentication (users, the members' key file) and the
 * NetworkPolicy guard it instead. H3 makes it unreachable with a
 * NetworkPolicy or by scaling it to zero, as DESIGN.md says.
 */
import { Chart, type App } from 'cdk8s';
import { addObject, containerSecurity, disruptionBudget, emptyDir, labelsOf, meta, podSecurity, selectorOf, serviceAccount, spreadOf, type Container, type EnvVar } from './k8s.ts';
import { CONFIG } from './secrets-chart.ts';
import { mongoMembers, PORTS, type Resources, type Settings } from './settings.ts';

/** Label of the pods allowed to connect to MongoDB (the NetworkPolicy selects it). */
export const MONGO_CLIENT_LABEL = { 'flatline.dev/mongo-client': 'true' } as const;

/** Pods with this label get no Istio sidecar. */
const NO_SIDECAR = { 'sidecar.istio.io/inject': 'false' } as const;

const KEYFILE_DIR = '/var/lib/mongo-keyfile';

function fromSecret(name: string, secret: string, key: string): EnvVar {
  return { name, valueFrom: { secretKeyRef: { name: secret, key } } };
}

/**
 * Only the first member creates the root user (the image's
 * MONGO_INITDB_ROOT_* on an empty data folder): replSetInitiate refuses
 * members that already hold data, so the others must start empty and get
 * the user by initial sync.
 */
const ENTRYPOINT = 'if [ "${HOSTNAME##*-}" != "0" ]; then unset MONGO_INITDB_ROOT_USERNAME MONGO_INITDB_ROOT_PASSWORD; fi; exec docker-entrypoint.sh "$@"';

/** The init Job's mongosh script: initiate the set once, then create (or update) the services' user. Idempotent. */
const INIT_SCRIPT = `
const e = process.env;
const members = e.MONGO_MEMBERS.split(',');
const auth = encodeURIComponent(e.MONGO_ROOT_USERNAME) + ':' + encodeURIComponent(e.MONGO_ROOT_PASSWORD) + '@';
function retry(what, fn) {
  for (let i = 1; ; i++) {
    try { return fn(); } catch (err) {
      if (i >= 150) throw err;
      print(what + ': ' + err.message + ' (retrying)');
      sleep(2000);
    }
  }
}
const first = retry('connect to ' + members[0], () => {
  const d = connect('mongodb://' + auth + members[0] + '/admin?directConnection=true&authSource=admin');
  d.runCommand({ ping: 1 });
  return d;
});
let initiated = true;
try { first.adminCommand({ replSetGetStatus: 1 }); } catch (err) {
  if (err.codeName !== 'NotYetInitialized') throw err;
  initiated = false;
}
if (!initiated) {
  retry('initiate ' + e.MONGO_REPLICA_SET, () => {
    try {
      first.adminCommand({ replSetInitiate: { _id: e.MONGO_REPLICA_SET, members: members.map((host, i) => ({ _id: i, host })) } });
    } catch (err) {
      if (err.codeName !== 'AlreadyInitialized') throw err;
    }
  });
  print('initiated ' + e.MONGO_REPLICA_SET + ' with ' + members.join(', '));
}
const set = retry('connect to ' + e.MONGO_REPLICA_SET, () => {
  const d = connect('mongodb://' + auth + members.join(',') + '/admin?replicaSet=' + e.MONGO_REPLICA_SET + '&authSource=admin');
  d.runCommand({ ping: 1 });
  return d;
});
const app = set.getSiblingDB(e.MONGO_DATABASE);
const roles = [{ role: 'readWrite', db: e.MONGO_DATABASE }];
retry('create user ' + e.MONGO_APP_USERNAME, () => {
  if (app.getUser(e.MONGO_APP_USERNAME) === null) app.createUser({ user: e.MONGO_APP_USERNAME, pwd: e.MONGO_APP_PASSWORD, roles });
  else app.updateUser(e.MONGO_APP_USERNAME, { pwd: e.MONGO_APP_PASSWORD, roles });
});
print('replica set ' + e.MONGO_REPLICA_SET + ' ready; user ' + e.MONGO_APP_USERNAME + ' may use ' + e.MONGO_DATABASE);
`.trim();

/**
 * Appended to INIT_SCRIPT with Toxiproxy on: the services then reach the
 * first member alone (toxiproxy.ts), so it is made the preferred primary,
 * at once on a set that already runs. Idempotent like the rest.
 */
const PREFER_FIRST_MEMBER_SCRIPT = `
retry('prefer ' + members[0] + ' as primary', () => {
  const config = set.adminCommand({ replSetGetConfig: 1 }).config;
  const first = config.members.find((m) => m.host === members[0]);
  if (first === undefined) throw new Error(members[0] + ' is not a member');
  if (first.priority === 2) return;
  first.priority = 2;
  config.version += 1;
  set.adminCommand({ replSetReconfig: config });
});
print(members[0] + ' is the preferred primary (the Toxiproxy links lead to it)');
`.trim();

/** What the short-lived containers (key file copy, init Job) need. */
const SMALL: Resources = { requests: { cpu: '10m', memory: '64Mi' }, limits: { cpu: '500m', memory: '256Mi' } };

function mongoContainer(s: Settings, rest: Omit<Container, 'image' | 'imagePullPolicy' | 'resources' | 'securityContext'>, resources: Resources = s.mongo.resources): Container {
  return { image: s.mongo.image, imagePullPolicy: 'IfNotPresent', resources, securityContext: containerSecurity(s.mongo.uid), ...rest };
}

/** The replica set, its init Job, budget and NetworkPolicy. */
export class MongoChart extends Chart {
  constructor(scope: App, id: string, s: Settings) {
    super(scope, id, { disableResourceNameHashes: true });
    const rootEnv = [fromSecret('MONGO_INITDB_ROOT_USERNAME', CONFIG.mongoRoot.secret, CONFIG.mongoRoot.username), fromSecret('MONGO_INITDB_ROOT_PASSWORD', CONFIG.mongoRoot.secret, CONFIG.mongoRoot.password)];
    // mongosh keeps its logs under $HOME; the root filesystem is read-only.
    const home: EnvVar = { name: 'HOME', value: '/tmp' };

    addObject(this, serviceAccount('mongo', 'database', s));
    addObject(this, serviceAccount('mongo-init', 'database', s));
    addObject(this, {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: meta('mongo', 'database', s),
      spec: {
        clusterIP: 'None',
        // Members must find each other by name before they are ready (to elect a primary at all).
        publishNotReadyAddresses: true,
        selector: selectorOf('mongo'),
        ports: [{ name: 'tcp-mongo', port: PORTS.mongo, targetPort: PORTS.mongo, protocol: 'TCP' }],
      },
    });

    const mongod = mongoContainer(s, {
      name: 'mongod',
      command: ['bash', '-c', ENTRYPOINT, 'mongod-entrypoint'],
      args: ['mongod', '--replSet', s.mongo.replicaSet, '--bind_ip_all', '--port', String(PORTS.mongo), '--keyFile', `${KEYFILE_DIR}/keyfile`, '--wiredTigerCacheSizeGB', '0.25'],
      env: [...rootEnv, home],
      ports: [{ name: 'tcp-mongo', containerPort: PORTS.mongo, protocol: 'TCP' }],
      readinessProbe: { exec: { command: ['mongosh', '--quiet', '--norc', '--eval', "db.adminCommand('ping').ok"] }, periodSeconds: 15, timeoutSeconds: 10, failureThreshold: 3 },
      livenessProbe: { tcpSocket: { port: PORTS.mongo }, initialDelaySeconds: 30, periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 6 },
      volumeMounts: [
        { name: 'data', mountPath: '/data/db' },
        { name: 'configdb', mountPath: '/data/configdb' },
        { name: 'tmp', mountPath: '/tmp' },
        { name: 'keyfile', mountPath: KEYFILE_DIR, readOnly: true },
      ],
    });
    // mongod refuses a key file readable by group or others; Secret files are group-readable (fsGroup), so copy it 0400.
    const keyfile = mongoContainer(
      s,
      {
        name: 'keyfile',
        command: ['sh', '-c', `cp /etc/mongo-keyfile/${CONFIG.mongoKeyFile.key} ${KEYFILE_DIR}/keyfile && chmod 400 ${KEYFILE_DIR}/keyfile`],
        volumeMounts: [
          { name: 'keyfile-secret', mountPath: '/etc/mongo-keyfile', readOnly: true },
          { name: 'keyfile', mountPath: KEYFILE_DIR },
        ],
      },
      SMALL,
    );
    addObject(this, {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: meta('mongo', 'database', s),
      spec: {
        serviceName: 'mongo',
        replicas: s.mongo.replicas,
        podManagementPolicy: 'Parallel',
        selector: { matchLabels: selectorOf('mongo') },
        template: {
          metadata: { labels: { ...labelsOf('mongo', 'database'), ...NO_SIDECAR } },
          spec: {
            serviceAccountName: 'mongo',
            automountServiceAccountToken: false,
            securityContext: podSecurity(s.mongo.uid),
            terminationGracePeriodSeconds: 30,
            topologySpreadConstraints: spreadOf('mongo'),
            initContainers: [keyfile],
            containers: [mongod],
            volumes: [
              emptyDir('configdb'),
              emptyDir('tmp', '256Mi'),
              { name: 'keyfile', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } },
              { name: 'keyfile-secret', secret: { secretName: CONFIG.mongoKeyFile.secret, defaultMode: 0o440 } },
            ],
          },
        },
        volumeClaimTemplates: [
          {
            metadata: { name: 'data', labels: labelsOf('mongo', 'database') },
            spec: { accessModes: ['ReadWriteOnce'], ...(s.storageClass ? { storageClassName: s.storageClass } : {}), resources: { requests: { storage: s.mongo.storage } } },
          },
        ],
      },
    });
    // One member at a time: two of three keep a primary.
    addObject(this, disruptionBudget('mongo', 'database', s));

    addObject(this, {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: meta('mongo-init', 'database', s),
      spec: {
        backoffLimit: 20,
        template: {
          metadata: { labels: { ...labelsOf('mongo-init', 'database'), ...NO_SIDECAR, ...MONGO_CLIENT_LABEL } },
          spec: {
            restartPolicy: 'OnFailure',
            serviceAccountName: 'mongo-init',
            automountServiceAccountToken: false,
            securityContext: podSecurity(s.mongo.uid),
            containers: [
              mongoContainer(
                s,
                {
                  name: 'init',
                  command: ['mongosh', '--nodb', '--quiet', '--norc', '--eval', s.toxiproxy ? `${INIT_SCRIPT}\n${PREFER_FIRST_MEMBER_SCRIPT}` : INIT_SCRIPT],
                  env: [
                    fromSecret('MONGO_ROOT_USERNAME', CONFIG.mongoRoot.secret, CONFIG.mongoRoot.username),
                    fromSecret('MONGO_ROOT_PASSWORD', CONFIG.mongoRoot.secret, CONFIG.mongoRoot.password),
                    fromSecret('MONGO_APP_USERNAME', CONFIG.mongoApp.secret, CONFIG.mongoApp.username),
                    fromSecret('MONGO_APP_PASSWORD', CONFIG.mongoApp.secret, CONFIG.mongoApp.password),
                    { name: 'MONGO_MEMBERS', value: mongoMembers(s).join(',') },
                    { name: 'MONGO_REPLICA_SET', value: s.mongo.replicaSet },
                    { name: 'MONGO_DATABASE', value: s.mongo.database },
                    home,
                  ],
                  volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
                },
                SMALL,
              ),
            ],
            volumes: [emptyDir('tmp')],
          },
        },
      },
    });

    addObject(this, {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: meta('mongo', 'database', s),
      spec: {
        podSelector: { matchLabels: selectorOf('mongo') },
        policyTypes: ['Ingress'],
        ingress: [
          {
            from: [{ podSelector: { matchLabels: MONGO_CLIENT_LABEL } }, { podSelector: { matchLabels: selectorOf('mongo') } }],
            ports: [{ protocol: 'TCP', port: PORTS.mongo }],
          },
        ],
      },
    });
  }
}
