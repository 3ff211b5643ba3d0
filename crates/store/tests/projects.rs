//! Projects in the SQLite store: the migration of a store written by the release before them
//! (`fixtures/store-v3.sqlite`, made by 4ada15c's `SqliteStore`), scoped lists, spend, archiving.

mod common;

use tandem_store::*;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/store-v3.sqlite");

fn migrated() -> (tempfile::TempDir, SqliteStore) {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("tandem.sqlite");
    std::fs::copy(FIXTURE, &path).unwrap();
    let s = SqliteStore::open(&path).unwrap();
    (d, s)
}

fn project_of(s: &SqliteStore, key: &str) -> String {
    s.key(key)
        .unwrap()
        .unwrap()
        .0
        .project_id
        .expect("every key has a project")
}

#[test]
fn the_previous_release_store_migrates_without_keeping_the_leak() {
    let (_d, s) = migrated();
    let (alice, bob, ops) = (
        project_of(&s, "key_aaaa1111"),
        project_of(&s, "key_bbbb2222"),
        project_of(&s, "key_cccc3333"),
    );
    // Each key in a project of its own, named after it, ids of 96 random bits.
    assert!(alice != bob && bob != ops && alice != ops);
    for (p, name) in [(&alice, "alice"), (&bob, "bob"), (&ops, "ops")] {
        assert_eq!(s.project(p).unwrap().unwrap().name, name);
        assert!(p.starts_with("proj_") && p.len() == 5 + 24);
    }
    assert_eq!(s.list_projects().unwrap().len(), 3);
    // alice's batch and its three files are alice's project's; bob's are bob's.
    let ids = |v: Vec<FileRecord>| v.into_iter().map(|f| f.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.list_files(Some(&alice), None, None, 100, true).unwrap()),
        ["file-alice-in", "file-alice-err", "file-alice-out"]
    );
    assert_eq!(
        ids(s.list_files(Some(&bob), None, None, 100, true).unwrap()),
        ["file-bob-in"]
    );
    assert!(s.list_files(Some(&ops), None, None, 100, true).unwrap().is_empty());
    assert_eq!(
        s.batch("batch_alice").unwrap().unwrap().project_id.as_deref(),
        Some(alice.as_str())
    );
    let batches = |p: Option<&str>| -> Vec<String> {
        s.list_batches(p, None, 100)
            .unwrap()
            .into_iter()
            .map(|b| b.id)
            .collect()
    };
    assert_eq!(batches(Some(&bob)), ["batch_bob"]);
    // Files no batch names and the open server's objects belong to no project.
    assert_eq!(
        ids(s.list_files(None, None, None, 100, true).unwrap()),
        ["file-orphan-1", "file-orphan-2", "file-open-in"]
    );
    assert_eq!(batches(None), ["batch_open"]);
    // Usage follows the key; the project's spend starts at the key's.
    let usage = s.usage_since(0).unwrap();
    assert_eq!(usage.len(), 2);
    assert_eq!(usage[0].project_id.as_deref(), Some(alice.as_str()));
    assert_eq!(usage[1].project_id.as_deref(), Some(bob.as_str()));
    assert_eq!(s.project(&bob).unwrap().unwrap().spent, 0.5);
    let by = s.usage_summary(0, u64::MAX, &[UsageDim::Project]).unwrap();
    assert_eq!(by.len(), 2);
    // The startup line says what happened.
    let notes = s.migration_notes();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains("3 keys") && notes[0].contains("2 batches and 4 files attributed"),
        "{}",
        notes[0]
    );
    assert!(
        notes[0].contains("1 batches and 3 files belong to no project"),
        "{}",
        notes[0]
    );
    // An operator gives an orphan to a project; an owned file cannot be taken.
    assert!(s.assign_file("file-orphan-1", &bob).unwrap());
    assert!(!s.assign_file("file-orphan-1", &alice).unwrap());
    assert!(!s.assign_file("file-alice-in", &bob).unwrap());
    assert!(!s.assign_file("file-orphan-2", "proj_nope").unwrap());
    assert_eq!(
        ids(s.list_files(Some(&bob), None, None, 100, true).unwrap()),
        ["file-bob-in", "file-orphan-1"]
    );
}

#[test]
fn a_migrated_store_reopens_without_migrating_again_and_a_new_one_reports_nothing() {
    let (d, s) = migrated();
    let alice = project_of(&s, "key_aaaa1111");
    drop(s);
    let s = SqliteStore::open(&d.path().join("tandem.sqlite")).unwrap();
    assert!(s.migration_notes().is_empty());
    assert_eq!(project_of(&s, "key_aaaa1111"), alice);
    let fresh = SqliteStore::open(&d.path().join("new.sqlite")).unwrap();
    assert!(fresh.migration_notes().is_empty());
}

fn file(id: &str, t: u64, project: Option<&str>) -> FileRecord {
    FileRecord {
        id: id.into(),
        bytes: 1,
        created_at: t,
        filename: "f.jsonl".into(),
        purpose: "batch".into(),
        expires_at: None,
        project_id: project.map(String::from),
    }
}

#[test]
fn lists_and_cursors_stay_inside_a_project() {
    for b in common::backends() {
        let s = b.open();
        let s = s.as_ref();
        let (a, b) = (ProjectRecord::new("a", 1).unwrap(), ProjectRecord::new("b", 1).unwrap());
        s.insert_project(&a).unwrap();
        s.insert_project(&b).unwrap();
        for i in 0..4u64 {
            let owner = if i % 2 == 0 { &a.id } else { &b.id };
            s.insert_file(&file(&format!("file-{i}"), 10 + i, Some(owner))).unwrap();
            let mut batch = BatchRecord::new(
                format!("batch_{i}"),
                "/v1/completions".into(),
                format!("file-{i}"),
                i,
                99,
            );
            batch.project_id = Some(owner.clone());
            s.insert_batch(&batch).unwrap();
        }
        let ids = |v: Vec<FileRecord>| v.into_iter().map(|f| f.id).collect::<Vec<_>>();
        assert_eq!(
            ids(s.list_files(Some(&a.id), None, None, 10, false).unwrap()),
            ["file-2", "file-0"]
        );
        // Another project's id as the cursor pages nothing (its place in time stays hidden).
        assert!(s
            .list_files(Some(&a.id), None, Some("file-3"), 10, false)
            .unwrap()
            .is_empty());
        assert_eq!(
            ids(s.list_files(Some(&a.id), None, Some("file-2"), 10, false).unwrap()),
            ["file-0"]
        );
        let bids = |p: &str, after: Option<&str>| -> Vec<String> {
            s.list_batches(Some(p), after, 10)
                .unwrap()
                .into_iter()
                .map(|b| b.id)
                .collect()
        };
        assert_eq!(bids(&b.id, None), ["batch_3", "batch_1"]);
        assert!(bids(&b.id, Some("batch_2")).is_empty());
        assert!(s.list_files(None, None, None, 10, false).unwrap().is_empty());
        assert!(owned_by(Some(a.id.as_str()), Some(a.id.as_str())));
        assert!(!owned_by(Some(a.id.as_str()), Some(b.id.as_str())));
        assert!(!owned_by(None, Some(a.id.as_str())));
        assert!(!owned_by(Some(a.id.as_str()), None));
    }
}

#[test]
fn keys_get_projects_and_archiving_revokes_them_and_cancels_open_batches() {
    for b in common::backends() {
        let s = b.open();
        let s = s.as_ref();
        let ring = KeyRing::from_secret(KeyRing::random_secret().unwrap());
        let new = |name: &str, project: Option<String>| NewKey {
            name: name.into(),
            project_id: project,
            ..Default::default()
        };
        // Without a project a key gets one of its own, named after it.
        let (solo, _) = create_key(s, &ring, new("solo", None), 5).unwrap();
        let own = s.project(solo.project_id.as_deref().unwrap()).unwrap().unwrap();
        assert_eq!(own.name, "solo");
        let team = ProjectRecord::new("team", 5).unwrap();
        s.insert_project(&team).unwrap();
        let (k1, _) = create_key(s, &ring, new("k1", Some(team.id.clone())), 6).unwrap();
        let (k2, _) = create_key(s, &ring, new("k2", Some(team.id.clone())), 6).unwrap();
        assert!(matches!(
            create_key(s, &ring, new("x", Some("proj_nope".into())), 6),
            Err(StoreError::Invalid(_))
        ));
        // Spend moves on both the key and its project.
        s.insert_usage(&UsageRecord {
            created_at: 7,
            request_id: "r".into(),
            batch_id: None,
            line: None,
            model: "m".into(),
            tier: "mini".into(),
            prompt_tokens: 1,
            cached_tokens: 0,
            completion_tokens: 1,
            cost: 0.25,
            key_id: Some(k1.id.clone()),
            project_id: Some(team.id.clone()),
            latency_ms: 1,
            status: 200,
        })
        .unwrap();
        assert_eq!(s.project(&team.id).unwrap().unwrap().spent, 0.25);
        let u = ProjectUpdate {
            rpm: Some(Some(10)),
            budget: Some(Some(2.0)),
            ..Default::default()
        };
        assert!(s.update_project(&team.id, &u).unwrap());
        assert!(!s.update_project("proj_nope", &u).unwrap());
        let p = s.project(&team.id).unwrap().unwrap();
        assert_eq!((p.rpm, p.tpm, p.budget), (Some(10), None, Some(2.0)));
        // Archiving: both keys revoked, the open batch cancelling, the finished one untouched.
        s.insert_file(&file("file-t", 1, Some(&team.id))).unwrap();
        for (id, done) in [("batch_open", false), ("batch_done", true)] {
            let mut b = BatchRecord::new(id.into(), "/v1/completions".into(), "file-t".into(), 1, 99);
            b.project_id = Some(team.id.clone());
            s.insert_batch(&b).unwrap();
            if done {
                assert!(s.fail_batch(id, "{}", 2).unwrap());
            }
        }
        let a = s.archive_project(&team.id, 9).unwrap().unwrap();
        assert_eq!(
            a,
            Archived {
                keys_revoked: 2,
                batches_cancelled: 1
            }
        );
        assert_eq!(s.batch("batch_open").unwrap().unwrap().status, BatchStatus::Cancelling);
        assert_eq!(s.batch("batch_done").unwrap().unwrap().status, BatchStatus::Failed);
        for k in [&k1, &k2] {
            assert_eq!(s.key(&k.id).unwrap().unwrap().0.revoked_at, Some(9));
        }
        assert_eq!(s.key(&solo.id).unwrap().unwrap().0.revoked_at, None);
        assert_eq!(s.archive_project(&team.id, 10).unwrap(), None, "archived once");
        assert!(matches!(
            create_key(s, &ring, new("late", Some(team.id.clone())), 11),
            Err(StoreError::Invalid(_))
        ));
        // Its objects stay on disk.
        assert!(s.file("file-t").unwrap().is_some());
    }
}

#[test]
fn stored_responses_expire_and_are_swept() {
    for b in common::backends() {
        let s = b.open();
        let s = s.as_ref();
        let rec = |id: &str, expires_at: u64| ResponseRecord {
            id: id.into(),
            project_id: None,
            created_at: 10,
            expires_at,
            previous_response_id: None,
            object: "{}".into(),
            messages: "[]".into(),
            input_items: "[]".into(),
            pending: id == "resp_new",
        };
        s.insert_response(&rec("resp_old", 100)).unwrap();
        s.insert_response(&rec("resp_new", 1000)).unwrap();
        assert!(s.response("resp_old", 99).unwrap().is_some());
        assert!(s.response("resp_old", 100).unwrap().is_none(), "expired is gone");
        assert_eq!(s.sweep_responses(500).unwrap(), 1);
        assert!(s.response("resp_new", 500).unwrap().is_some());
        assert_eq!(s.pending_responses().unwrap().len(), 1);
        assert!(s.update_response("resp_new", "{}", "[]", false).unwrap());
        assert!(s.pending_responses().unwrap().is_empty());
        assert!(s.delete_response("resp_new").unwrap());
        assert!(!s.delete_response("resp_new").unwrap());
    }
}
